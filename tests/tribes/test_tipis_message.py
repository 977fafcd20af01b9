"""MapMessage wire form (pycat/tribes/tipis/map_message.py): round trips through the real codec, and
every malformed field is a ProtocolError that names it."""
import pytest

from pycat.errors import ProtocolError
from pycat.tribes.io import codec
from pycat.tribes.member import Member
from pycat.tribes.tipis import map_message as mm
from pycat.tribes.tipis.map_message import MapMessage

A = Member("10.0.0.1", 4000, unique_id=b"a" * 16)
B = Member("10.0.0.2", 4000, unique_id=b"b" * 16)
C = Member("::1", 4001, unique_id=b"c" * 16)
MAP = b"localhost#/app-map"


def wire(msg):
    """What a peer decodes: the plain form through the codec's bytes."""
    return codec.loads(codec.dumps(msg.to_plain()))


@pytest.mark.parametrize("msg", [
    MapMessage(MAP, mm.BACKUP, "sid-1", {"attrs": {"a": 1}, "v": [1, 2.5, None]}, False, A, (B,), version=7),
    MapMessage(MAP, mm.BACKUP, "sid-1", {"set": {"x": b"\x00"}}, True, A, (B,)),
    MapMessage(MAP, mm.RETRIEVE_BACKUP, b"bytes-key"),
    MapMessage(MAP, mm.PROXY, 42, None, False, A, (B, C), version=(1 << 63) - 1),
    MapMessage(MAP, mm.REMOVE, "sid-2"),
    MapMessage(MAP, mm.STATE),
    MapMessage(MAP, mm.START, primary=A),
    MapMessage(MAP, mm.STOP, primary=C),
    MapMessage(MAP, mm.INIT, primary=A),
    MapMessage(MAP, mm.ACCESS, "sid-3", None, False, A, (B,)),
    MapMessage(MAP, mm.NOTIFY_MAPMEMBER, "sid-3", None, False, C, (A,)),
    MapMessage(MAP, mm.PING, primary=A),
    MapMessage(MAP, mm.PING, primary=A, state=mm.INITIALIZED),
])
def test_round_trip(msg):
    back = MapMessage.from_plain(wire(msg))
    fields = ("map_id", "type", "key", "value", "diff", "primary", "backups", "state", "version")
    assert [getattr(back, f) for f in fields] == [getattr(msg, f) for f in fields]
    # members come back as Members with the same identity (equality: host, port, unique id)
    for member in (back.primary,) + back.backups:
        assert member is None or isinstance(member, Member)
    assert repr(back).startswith("MapMessage(%s" % back.type_name)


def test_the_envelope_is_flat_and_tagged():
    plain = MapMessage(MAP, mm.BACKUP, "k", 1, False, A, (B,), version=3).to_plain()
    assert plain[:4] == (mm.TAG, mm.VERSION, MAP, mm.BACKUP) and len(plain) == mm.FIELDS == 11
    assert plain[7] == (A.host, 4000, b"a" * 16) and plain[9:] == (3, None)
    # lists (another encoder's choice) are accepted as well as tuples
    assert MapMessage.from_plain([list(p) if isinstance(p, tuple) else p for p in plain]).backups == (B,)


def test_members_are_resolved_through_the_callback():
    known = Member("10.0.0.2", 4000, unique_id=b"b" * 16, payload=b"the channel's own")
    seen = []

    def resolve(m):
        seen.append(m)
        return known if m == known else m

    back = MapMessage.from_plain(wire(MapMessage(MAP, mm.PROXY, "k", None, False, A, (B,))), resolve)
    assert back.backups[0] is known and back.primary == A and len(seen) == 2


def test_state_payload_round_trip_writes_each_member_once():
    records = [("k1", A, (B,), 1), ("k2", B, (A,), 5), (7, None, (C,), 0), (b"k4", A, (), 2)]
    value = mm.state_to_plain(records)
    assert len(value[0]) == 3
    msg = MapMessage(MAP, mm.STATE, value=value)
    back = mm.state_from_plain(MapMessage.from_plain(wire(msg)).value)
    assert back == records


def test_peek_map_id():
    assert mm.peek_map_id(MapMessage(MAP, mm.INIT).to_plain()) == MAP
    for other in (None, b"bytes", "text", (), ("__pycat_map__",), {"__pycat_map__": 1},
                  ("__pycat_map__", 1, "not bytes"), ("other", 1, MAP)):
        assert mm.peek_map_id(other) is None


def _good(**change):
    fields = dict(zip(("tag", "version", "map_id", "type", "key", "value", "diff", "primary", "backups",
                       "entry_version", "state"),
                      MapMessage(MAP, mm.BACKUP, "k", {"v": 1}, False, A, (B,)).to_plain()))
    fields.update(change)
    return tuple(fields.values())


MEMBER = (A.host, 4000, b"a" * 16)


@pytest.mark.parametrize("plain, words", [
    ("not a tuple", "is a tuple"),
    (_good()[:10], "has 11 fields"),
    (_good() + (None,), "has 11 fields"),
    (_good(tag="__pycat_rpc__"), "tag"),
    (_good(version=2), "version"),
    (_good(version=True), "version"),
    (_good(version="1"), "version"),
    (_good(map_id="text"), "map id"),
    (_good(map_id=b""), "map id"),
    (_good(map_id=b"x" * (mm.MAX_MAP_ID + 1)), "map id"),
    (_good(type=99), "unknown map message type"),
    (_good(type=True), "unknown map message type"),
    (_good(type="BACKUP"), "unknown map message type"),
    (_good(key=None), "BACKUP message without a key"),
    (_good(key=1.5), "BACKUP key"),
    (_good(key=True), "BACKUP key"),
    (_good(key=["list"]), "BACKUP key"),
    (_good(key="k" * (mm.MAX_KEY + 1)), "BACKUP key"),
    (_good(key=1 << 70), "BACKUP key"),
    (_good(type=mm.INIT, key="k"), "INIT message carries a key"),
    (_good(diff=1), "diff flag"),
    (_good(diff=None), "diff flag"),
    (_good(type=mm.PROXY, diff=True), "PROXY message marked as a diff"),
    (_good(primary="tcp://10.0.0.1:4000"), "primary member is not a (host, port, unique id)"),
    (_good(primary=(b"\x0a\x00\x00", 4000, b"a" * 16)), "primary member host"),
    (_good(primary=("10.0.0.1", 4000, b"a" * 16)), "primary member host"),
    (_good(primary=(A.host, 70000, b"a" * 16)), "primary member port"),
    (_good(primary=(A.host, -1, b"a" * 16)), "primary member port"),
    (_good(primary=(A.host, True, b"a" * 16)), "primary member port"),
    (_good(primary=(A.host, 4000, b"a" * 15)), "primary member unique id"),
    (_good(primary=(A.host, 4000)), "primary member is not"),
    (_good(backups=MEMBER), "backup member 0 is not a (host, port, unique id)"),
    (_good(backups=None), "backup members must be a tuple"),
    (_good(backups=(MEMBER,) * (mm.MAX_BACKUPS + 1)), "backup members (at most"),
    (_good(backups=(MEMBER, (A.host, 4000, "uid"))), "backup member 1 unique id"),
    (_good(entry_version=-1), "BACKUP version must be an int"),
    (_good(entry_version=1 << 63), "BACKUP version must be an int"),
    (_good(entry_version=None), "BACKUP version must be an int"),
    (_good(entry_version=False), "BACKUP version must be an int"),
    (_good(state=mm.INITIALIZED), "BACKUP message carries a map state"),
    (_good(type=mm.PING, key=None, diff=False, state=9), "unknown map state"),
    (_good(type=mm.PING, key=None, diff=False, state="INITIALIZED"), "unknown map state"),
])
def test_every_malformed_field_is_a_protocol_error_naming_it(plain, words):
    with pytest.raises(ProtocolError) as err:
        MapMessage.from_plain(plain)
    assert words in str(err.value)


@pytest.mark.parametrize("value, words", [
    (None, "STATE payload is a (members, rows) pair"),
    (((), (), ()), "STATE payload is a (members, rows) pair"),
    (("m", ()), "members and rows must be tuples"),
    (((MEMBER,) * (mm.MAX_STATE_MEMBERS + 1), ()), "names 4097 members"),
    ((("bad",), ()), "STATE member 0"),
    (((MEMBER,), ("row",)), "STATE row 0 is not"),
    (((MEMBER,), (("k", 0, ()),)), "STATE row 0 is not"),
    (((MEMBER,), ((None, 0, (), 1),)), "STATE row 0 has no key"),
    (((MEMBER,), ((2.5, 0, (), 1),)), "STATE row 0 key"),
    (((MEMBER,), (("k", 1, (), 1),)), "primary index"),
    (((MEMBER,), (("k", -2, (), 1),)), "primary index"),
    (((MEMBER,), (("k", "0", (), 1),)), "primary index"),
    (((MEMBER,), (("k", 0, (1,), 1),)), "backup index"),
    (((MEMBER,), (("k", 0, (True,), 1),)), "backup index"),
    (((MEMBER,), (("k", 0, None, 1),)), "backups must be a tuple"),
    (((MEMBER,), (("k", 0, (0,) * (mm.MAX_BACKUPS + 1), 1),)), "backups must be a tuple"),
    (((MEMBER,), (("k", 0, (0,), -1),)), "STATE row 0 version"),
    (((MEMBER,), (("k", 0, (0,), "1"),)), "STATE row 0 version"),
    (((MEMBER,), (("k", 0, (0,), 1), ("j", 0, (0,), None))), "STATE row 1 version"),
])
def test_malformed_state_payload(value, words):
    with pytest.raises(ProtocolError) as err:
        mm.state_from_plain(value)
    assert words in str(err.value)


def test_check_key():
    for key in ("sid", b"sid", 7, -(1 << 63)):
        assert mm.check_key(key) == key
    for bad in (None, 1.0, True, ("t",)):
        with pytest.raises(TypeError):
            mm.check_key(bad)
    for bad in ("x" * (mm.MAX_KEY + 1), 1 << 63):
        with pytest.raises(ValueError):
            mm.check_key(bad)
