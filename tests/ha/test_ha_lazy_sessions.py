"""State transfer's lazy copies (session_table.py) and the one-pass record writer, in-process and pure:
no sockets. A joiner keeps each received session as its record (a PendingSession) and builds the
DeltaSession the first time something asks for it; every path that reads the table is tested here."""
import os
import struct

import pytest

from pycat.errors import ProtocolError
from pycat.ha.session import attr_values
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.delta_manager import DeltaManager
from pycat.ha.session.session_table import PendingSession, SessionTable
from pycat.tribes.io import codec

from test_ha_delta import PLAIN, _same


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeCluster:
    """What the receiving side asks of its cluster: trust."""
    def __init__(self, trusted):
        self.trusted = trusted


def manager(clock=None, **attrs):
    m = DeltaManager()
    m.name = "/app"
    m.clock = clock or Clock()
    m._holding = False
    for key, value in attrs.items():
        setattr(m, key, value)
    return m


def fill(m, count=5, attributes=None):
    sessions = []
    for i in range(count):
        s = m.create_session()
        values = attributes(i) if attributes else {"n": i, "cart": [{"sku": "S%d" % i, "qty": i}], "who": "user%d" % i}
        for name, value in values.items():
            s.set_attribute(name, value, False, False)
        s.max_inactive_interval = 1800
        sessions.append(s)
    return sessions


def transfer(sender):
    """The SESSION-ALL-DATA payloads ``sender`` answers a GET-ALL with (its _send captured)."""
    sent = []

    def send(event, session_id="", payload=None, unique_id="", dest=None, options=None):
        if event == d.EVT_ALL_SESSION_DATA:
            sent.append(list(payload))
        return True
    sender._send = send
    sender._send_all_sessions("joiner", "token")
    return sent


def joined(sender, **attrs):
    receiver = manager(**attrs)
    for chunk in transfer(sender):
        receiver.load_records(chunk)
    return receiver


class Recorder:
    def __init__(self):
        self.heard = []

    def session_created(self, event):
        self.heard.append(("created", event.session.id))

    def session_destroyed(self, event):
        self.heard.append(("destroyed", event.session.id))


# -- the one-pass writers --------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PLAIN))
def test_write_gives_the_bytes_of_encode_then_dump(key):
    value = PLAIN[key]
    out = bytearray(b"head")
    assert attr_values.write(value, out) is False
    assert bytes(out) == b"head" + codec.dumps(attr_values.encode(value))[1:]


def test_write_blobs_cycles_depth_and_refusals():
    import collections
    cyc = []
    cyc.append(cyc)
    deep = 0
    for _ in range(attr_values.MAX_DEPTH + 1):
        deep = [deep]
    wide = {}
    for i in range(50):
        wide[i] = wide                     # a wide cycle is found at once, not walked
    for value in (cyc, deep, wide, collections.OrderedDict(a=1), {"k": {1: object}}, attr_values.Blob(b"xyz"),
                  [1, "a", {2: "non-str key"}], {"a": [1, {"b": (1, 2)}], 3: None}):
        out = bytearray(b"h")
        blob = attr_values.write(value, out)
        assert bytes(out) == b"h" + codec.dumps(attr_values.encode(value))[1:]
        assert blob == (type(value) is attr_values.Blob or attr_values.needs_trust(value))
    # allow_blob False: nothing written, nothing pickled
    out = bytearray(b"h")
    assert attr_values.write(lambda: 1, out, allow_blob=False) is True and out == b"h"

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("no")
    out = bytearray(b"h")
    with pytest.raises(Exception):
        attr_values.write([Unpicklable()], out)
    assert out == b"h"


def test_record_bytes_equals_to_record_then_dumps():
    m = manager()
    s = fill(m, 1, lambda i: dict(PLAIN))[0]
    s.principal = ds.principal_object(("bob", ("b", "a")))
    s.auth_type = "FORM"
    s.clock = 7
    s.versions = {"a": (3, "n1"), d.MAX_INACTIVE: (2, "n2"), "gone": (5, "n1")}
    s.set_attribute("obj", object(), False, False)                   # would be a blob: untrusted, left out
    write, encode = m.value_writer(), m.value_encoder()
    assert ds.record_bytes(s, write) == codec.dumps(ds.to_record(s, encode))
    parsed = ds.parse_record(codec.loads(ds.record_bytes(s, write)))
    assert "obj" not in dict(parsed[7]) and parsed[6] == 7 and parsed[4] == ("bob", ("a", "b"))
    local = m.value_writer(local=True)
    assert ds.record_bytes(s, local) == codec.dumps(ds.to_record(s, m.value_encoder(local=True)))
    bare = m.create_session()
    assert ds.record_bytes(bare, write) == codec.dumps(ds.to_record(bare, encode))


def test_peek_record_reads_the_id_and_interval_and_checks_them():
    m = manager()
    s = fill(m, 1)[0]
    blob = ds.record_bytes(s, m.value_writer())
    assert ds.peek_record(blob) == (s.id, 1800)
    record = codec.loads(blob)
    for index, value in ((0, ""), (0, 5), (0, "x" * 300), (3, -2), (3, "1"), (3, 2 ** 40)):
        broken = list(record)
        broken[index] = value
        with pytest.raises(ProtocolError):
            ds.peek_record(codec.dumps(broken))
    for bad in (record[:8], record + [1], {"id": 1}, "text"):
        with pytest.raises(ProtocolError):
            ds.peek_record(codec.dumps(bad))
    for bad in (b"", b"\x01", blob[:10], b"\x02" + blob[1:], bytearray(blob), None):
        with pytest.raises((ProtocolError, TypeError)):
            ds.peek_record(bad)


def test_codec_loads_head():
    data = codec.dumps(["a", 1, [2, 3], b"x", None, "tail"])
    assert codec.loads_head(data, 3) == (["a", 1, [2, 3]], 6)
    assert codec.loads_head(codec.dumps(("t", 1)), 2) == (["t", 1], 2)
    for bad, n in ((codec.dumps(["a"]), 2), (codec.dumps({"a": 1}), 1), (codec.dumps("s"), 1),
                   (b"\x02" + data[1:], 1), (data[:9], 2), (b"\x01\x08\xff\xff\xff\xff\x00", 1)):
        with pytest.raises(ProtocolError):
            codec.loads_head(bad, n)
    with pytest.raises(ProtocolError):
        codec.loads_head(data, 1, max_size=len(data) - 1)


# -- the joiner keeps records ------------------------------------------------------------------------
def test_a_transfer_keeps_records_and_the_first_use_builds_the_same_session():
    sender = manager()
    originals = fill(sender, 5)
    originals[0].principal = ds.principal_object(("ann", ("r",)))
    originals[0].clock, originals[0].versions = 4, {"n": (4, "nodeA")}
    clock = Clock(1_700_000_500.0)
    receiver = joined(sender, clock=clock)
    table = receiver._sessions
    assert isinstance(table, SessionTable)
    assert len(table) == 5 and receiver.active_sessions == 5 and len(table.pending()) == 5
    assert receiver.session_counter == 5 and receiver.max_active == 5
    first = originals[0]
    assert first.id in table and table.is_pending(first.id)
    clock.now += 10                                  # built later: its idle clock still starts at arrival
    copy = receiver.find_session(first.id)
    assert type(copy) is ds.DeltaSession and not table.is_pending(first.id) and table.get(first.id) is copy
    assert dict(copy.raw_attributes()) == dict(first.raw_attributes())
    assert (copy.clock, copy.versions, copy.max_inactive_interval, copy.creation_time, copy.last_accessed_time) == (
        4, {"n": (4, "nodeA")}, 1800, first.creation_time, first.last_accessed_time)
    assert copy.principal.name == "ann" and not copy.is_primary and copy.this_accessed_time == 1_700_000_500.0
    assert len(table.pending()) == 4                 # the others are still records


def test_every_reader_of_the_table_sees_built_sessions():
    sender = manager()
    ids = [s.id for s in fill(sender, 4)]
    receiver = joined(sender)
    table = receiver._sessions
    assert type(table.get(ids[0])) is ds.DeltaSession                      # valves: manager._sessions.get
    assert type(table[ids[1]]) is ds.DeltaSession
    assert table.get("nope") is None and table.get("nope", 1) == 1
    with pytest.raises(KeyError):
        table["nope"]
    assert {type(s) for s in table.values()} == {ds.DeltaSession} and not table.pending()
    receiver = joined(sender)
    assert sorted(k for k, v in receiver._sessions.items() if type(v) is ds.DeltaSession) == sorted(ids)
    receiver = joined(sender)
    assert sorted(s.id for s in receiver.find_sessions()) == sorted(ids) and not receiver._sessions.pending()


def test_a_delta_for_a_pending_session_builds_it_and_applies():
    sender = manager()
    s = fill(sender, 2)[0]
    receiver = joined(sender)
    delta = d.DeltaRequest("/app", s.id, (9, "nodeA"))
    delta.set_attribute("n", 100)
    message = d.SessionMessage("/app", d.EVT_SESSION_DELTA, s.id, delta.to_plain())
    receiver.message_received(d.SessionMessage.from_plain(message.to_plain()), None)
    copy = receiver._sessions.get(s.id)
    assert copy["n"] == 100 and copy.clock == 9 and len(receiver._sessions.pending()) == 1


def test_expired_and_accessed_messages_for_pending_sessions():
    sender = manager()
    a, b = fill(sender, 2)
    receiver = joined(sender)
    recorder = Recorder()
    receiver.add_session_listener(recorder)
    receiver.message_received(d.SessionMessage("/app", d.EVT_SESSION_EXPIRED, a.id), None)
    assert a.id not in receiver._sessions and recorder.heard == [("destroyed", a.id)]
    receiver.clock.now += 60
    receiver.message_received(d.SessionMessage("/app", d.EVT_SESSION_ACCESSED, b.id), None)
    assert receiver._sessions.get(b.id).last_accessed_time == receiver.clock.now


def test_expiry_leaves_records_alone_until_they_are_due():
    clock = Clock()
    sender = manager()
    sessions = fill(sender, 3)
    sessions[2].max_inactive_interval = -1
    receiver = joined(sender, clock=clock)
    recorder = Recorder()
    receiver.add_session_listener(recorder)
    clock.now += 1800 * 2 - 1                        # a backup copy lives twice its interval
    assert receiver.process_expires() == 0 and len(receiver._sessions.pending()) == 3
    clock.now += 1
    assert receiver.process_expires() == 2
    assert list(receiver._sessions) == [sessions[2].id] and receiver._sessions.is_pending(sessions[2].id)
    assert sorted(recorder.heard) == sorted([("destroyed", sessions[0].id), ("destroyed", sessions[1].id)])
    assert receiver.expired_sessions == 2


def test_a_third_node_gets_the_records_as_they_came():
    sender = manager()
    fill(sender, 3)
    middle = joined(sender)
    first = sorted(b for chunk in transfer(sender) for b in chunk)
    again = sorted(b for chunk in transfer(middle) for b in chunk)
    assert again == first and len(middle._sessions.pending()) == 3       # forwarded, not built
    third = joined(middle)
    assert sorted(dict(s.raw_attributes())["who"] for s in third.find_sessions()) == ["user0", "user1", "user2"]
    # with sessionAttributeNameFilter the records are built and encoded under this node's rules
    middle.session_attribute_name_filter = "n|cart"
    filtered = [codec.loads(b) for chunk in transfer(middle) for b in chunk]
    assert not middle._sessions.pending() and all({a[0] for a in r[7]} == {"n", "cart"} for r in filtered)


def test_a_copy_due_to_expire_is_not_forwarded():
    clock = Clock()
    sender = manager()
    fill(sender, 2)
    middle = joined(sender, clock=clock)
    clock.now += 3600
    assert sum(len(c) for c in transfer(middle)) == 0


def test_take_over_moves_records_as_they_are():
    sender = manager()
    fill(sender, 3)
    old = joined(sender)
    built = old._sessions.get(next(iter(old._sessions)))
    pending = {p.id: p for p in old._sessions.pending()}
    new = manager()
    assert new.take_over(old) == 3
    assert not old._sessions
    for sid, p in pending.items():
        assert dict.get(new._sessions, sid) is p
    assert type(dict.get(new._sessions, built.id)) is ds.DeltaSession
    assert new._sessions.get(built.id)["who"] == built["who"]


def test_max_active_sessions_counts_records():
    sender = manager()
    fill(sender, 5)
    receiver = manager(max_active_sessions=3)
    loaded = damaged = 0
    for chunk in transfer(sender):
        ok, bad = receiver.load_records(chunk)
        loaded, damaged = loaded + ok, damaged + bad
    assert (loaded, damaged, len(receiver._sessions), receiver.rejected_sessions) == (3, 2, 3, 2)
    with pytest.raises(Exception):
        receiver.create_session()


def test_a_record_damaged_past_its_head_is_dropped_when_built():
    sender = manager()
    s = fill(sender, 1)[0]
    blob = ds.record_bytes(s, sender.value_writer())
    record = codec.loads(blob)
    record[7] = [["ok", 1], ["bad", ("zz", 1)]]                    # a malformed value deep inside
    for damaged in (codec.dumps(record), blob[:-3]):             # a bad value; a truncated tail
        receiver = manager()
        assert receiver.load_records([damaged]) == (1, 0)          # only the head is read on arrival
        assert receiver._sessions.get(s.id) is None and s.id not in receiver._sessions
        assert receiver.counter_dropped == 1
    # a record already here (a second transfer) is parsed whole at once, so counted damaged then
    receiver = manager()
    receiver.load_records([blob])
    assert receiver.load_records([codec.dumps(record)]) == (0, 1)


def test_ids_in_a_record_and_its_head_agree():
    sender = manager()
    s = fill(sender, 1)[0]
    receiver = manager()
    blob = ds.record_bytes(s, sender.value_writer())
    receiver.load_records([blob])
    pending = dict.get(receiver._sessions, s.id)
    other = PendingSession("F" * 32 + ".n1", pending.record, 1800, 0.0)
    dict.__setitem__(receiver._sessions, other.id, other)
    assert receiver._sessions.get(other.id) is None and receiver.counter_dropped == 1


class Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    with open(path, "w") as fh:
        fh.write("ran")
    return "loaded"


def test_a_blob_in_a_record_keeps_the_trust_rules_when_built(tmp_path):
    flag = str(tmp_path / "ran")
    sender = manager()
    s = fill(sender, 1)[0]
    s.set_attribute("evil", Marker(flag), False, False)
    blob = ds.record_bytes(s, sender.value_writer(local=True))           # a peer that sends blobs anyway
    assert not os.path.exists(flag)
    for trusted_channel in (False, True):
        receiver = manager()
        receiver.cluster = FakeCluster(trusted_channel)
        receiver.load_records([blob])
        assert receiver._sessions.is_pending(s.id) and not os.path.exists(flag)
        copy = receiver._sessions.get(s.id)
        if not trusted_channel:
            assert "evil" not in copy.raw_attributes() and not os.path.exists(flag)   # refused unread
            assert copy["who"] == "user0"
        else:
            assert copy.raw_attributes()["evil"] == "loaded" and os.path.exists(flag)
            os.unlink(flag)
    # a handover's own records (trusted=True) are trusted when built, whatever the channel
    receiver = manager()
    receiver.cluster = FakeCluster(False)
    receiver.load_records([blob], trusted=True)
    assert receiver._sessions.is_pending(s.id) and not os.path.exists(flag)
    assert receiver._sessions.get(s.id).raw_attributes()["evil"] == "loaded"


def test_session_created_listeners_or_waiting_deltas_build_at_once():
    sender = manager()
    a, b = fill(sender, 2)
    receiver = manager()
    recorder = Recorder()
    receiver.add_session_listener(recorder)
    for chunk in transfer(sender):
        receiver.load_records(chunk)
    assert not receiver._sessions.pending() and sorted(recorder.heard) == sorted([("created", a.id), ("created", b.id)])
    quiet = manager(notify_session_listeners_on_replication=False)
    quiet.add_session_listener(Recorder())
    for chunk in transfer(sender):
        quiet.load_records(chunk)
    assert len(quiet._sessions.pending()) == 2
    # a delta that arrived before its session waits; the record then builds the session at once
    waiting = manager()
    delta = d.DeltaRequest("/app", a.id, (50, "nodeC"))
    delta.set_attribute("late", 1)
    waiting.message_received(d.SessionMessage("/app", d.EVT_SESSION_DELTA, a.id, delta.to_plain()), None)
    assert a.id in waiting._parked
    for chunk in transfer(sender):
        waiting.load_records(chunk)
    assert not waiting._sessions.is_pending(a.id) and waiting._sessions.get(a.id)["late"] == 1
    assert waiting._sessions.is_pending(b.id)


def test_a_second_transfer_merges_into_pending_copies():
    sender = manager()
    s = fill(sender, 1)[0]
    receiver = joined(sender)
    s.set_attribute("n", 42, False, False)
    s.clock, s.versions = 3, {"n": (3, "nodeA")}
    for chunk in transfer(sender):
        receiver.load_records(chunk)
    assert receiver._sessions.get(s.id)["n"] == 42 and len(receiver._sessions) == 1


def test_stop_leaves_records_and_expire_on_shutdown_builds_and_destroys():
    sender = manager()
    fill(sender, 2)
    receiver = joined(sender)
    receiver._stop()
    assert len(receiver._sessions.pending()) == 2
    receiver = joined(sender, expire_sessions_on_shutdown=True)
    recorder = Recorder()
    receiver.add_session_listener(recorder)
    receiver._stop()
    assert not receiver._sessions and len(recorder.heard) == 2


def test_memory_of_a_record_is_its_bytes():
    sender = manager()
    fill(sender, 1, lambda i: {"blob": "x" * 1000})
    receiver = joined(sender)
    (pending,) = receiver._sessions.pending()
    assert 1000 < len(pending.record) < 1200 and struct.unpack(">I", pending.record[2:6])[0] == ds.RECORD_FIELDS


def test_id_changes_onto_and_of_pending_sessions():
    sender = manager()
    a, b, c = fill(sender, 3)
    receiver = joined(sender)
    recorder = Recorder()
    receiver.add_session_listener(recorder)
    # a pending session renamed (JvmRouteBinderValve on another node): built, then renamed
    new_id = a.id.rsplit(".", 1)[0] + ".nodeC" if "." in a.id else a.id + ".nodeC"
    delta = d.DeltaRequest("/app", a.id, (5, "nodeC"))
    delta.change_id(new_id)
    receiver.message_received(d.SessionMessage("/app", d.EVT_SESSION_DELTA, a.id, delta.to_plain()), None)
    assert a.id not in receiver._sessions and receiver._sessions.get(new_id)["who"] == "user0"
    # a rename onto the id of another pending session replaces that one (built first, then ended)
    delta = d.DeltaRequest("/app", b.id, (6, "nodeC"))
    delta.change_id(c.id)
    receiver.message_received(d.SessionMessage("/app", d.EVT_SESSION_DELTA, b.id, delta.to_plain()), None)
    assert b.id not in receiver._sessions and receiver._sessions.get(c.id)["who"] == "user1"
    assert not receiver._sessions.pending() and len(receiver._sessions) == 2
