import logging
import os
import struct
import sys
import types
import zlib

import pytest

from pycat.session import persistence
from pycat.session.manager import StandardManager


class Activating:
    """A value that records passivation/activation (module level so it pickles by reference)."""
    calls = []

    def __init__(self, tag):
        self.tag = tag

    def session_will_passivate(self, event):
        Activating.calls.append(("passivate", self.tag, event.session.id))

    def session_did_activate(self, event):
        Activating.calls.append(("activate", self.tag, event.session.id))


def new_manager(tmp_path, clock):
    m = StandardManager()
    m.clock = clock
    m.work_dir = str(tmp_path)
    return m


def test_header_and_record_layout_byte_by_byte(manager, clock):
    s = manager.create_session("ABC")
    s.max_inactive_interval = 60
    s.is_new = False
    s["k"] = 7
    payload = persistence.encode_session(s)
    blob = persistence.dump_value(7)
    expected = (b"\x00\x03ABC" + struct.pack(">dddiBI", clock.now, clock.now, clock.now, 60, 2, 1)
                + b"\x00\x00\x00\x01k" + struct.pack(">I", len(blob)) + blob)
    assert payload == expected
    import io
    out = io.BytesIO()
    persistence.write_records(out, [payload], 1)
    data = out.getvalue()
    assert data[:16] == b"PYCATSES\x00\x01\x00\x00\x00\x00\x00\x01"
    assert data[16:28] == b"\xa5SR1" + struct.pack(">II", len(payload), zlib.crc32(payload))
    assert data[28:] == payload
    assert list(persistence.iter_records(data)) == [payload]
    back = persistence.decode_session(payload, manager.create_empty_session, manager.load_value)
    assert (back.id, back.max_inactive_interval, back.is_new, back.valid) == ("ABC", 60, False, True)
    assert back.raw_attributes() == {"k": 7}


def test_round_trip_across_two_managers(tmp_path, clock, Recorder):
    Activating.calls.clear()
    first = new_manager(tmp_path, clock)
    rec1 = Recorder()
    first.add_session_listener(rec1)
    first.start()
    a = first.create_session()
    a["user"] = "alice"
    a["cart"] = {"items": [1, 2, 3]}
    a["act"] = Activating("a")
    a.max_inactive_interval = 600
    a.access()
    a.end_access()
    b = first.create_session()
    b["n"] = 1
    gone = first.create_session()
    gone.invalidate()
    ids = {a.id, b.id}
    created_a = a.creation_time
    clock.advance(5)
    first.stop()
    path = tmp_path / "SESSIONS.ser"
    assert path.exists()
    assert not [e for e in rec1.events if e[0] == "destroyed" and e[1] in ids]   # saved, not destroyed
    assert Activating.calls == [("passivate", "a", a.id)]
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]

    second = new_manager(tmp_path, clock)
    rec2 = Recorder()
    second.add_session_listener(rec2)
    second.start()
    assert not path.exists()                                # Tomcat deletes the file after loading
    assert {s.id for s in second.find_sessions()} == ids
    a2 = second.find_session(a.id)
    assert a2["user"] == "alice" and a2["cart"] == {"items": [1, 2, 3]}
    assert a2.creation_time == created_a and a2.max_inactive_interval == 600 and not a2.is_new
    assert second.find_session(b.id).is_new
    assert Activating.calls[-1] == ("activate", "a", a.id)
    assert rec2.events == []                                # restoring is not creating
    second.stop()


def test_expired_sessions_are_not_restored(tmp_path, clock):
    first = new_manager(tmp_path, clock)
    first.start()
    short = first.create_session()
    short.max_inactive_interval = 10
    keep = first.create_session()
    first.stop()
    clock.advance(20)
    second = new_manager(tmp_path, clock)
    second.start()
    assert [s.id for s in second.find_sessions()] == [keep.id]


def test_empty_pathname_disables_persistence(tmp_path, clock):
    m = new_manager(tmp_path, clock)
    m.pathname = ""
    m.start()
    m.create_session()
    m.stop()
    assert os.listdir(tmp_path) == []


def test_absolute_pathname(tmp_path, clock):
    m = new_manager(tmp_path / "work", clock)
    m.pathname = str(tmp_path / "elsewhere" / "s.ser")
    m.start()
    m.create_session()
    m.stop()
    assert (tmp_path / "elsewhere" / "s.ser").exists()


def _saved_file(tmp_path, clock, count=5):
    m = new_manager(tmp_path, clock)
    m.start()
    ids = []
    for i in range(count):
        s = m.create_session()
        s["i"] = i
        s["pad"] = "x" * 50
        ids.append(s.id)
    m.stop()
    path = tmp_path / "SESSIONS.ser"
    data = bytearray(path.read_bytes())
    offsets, pos = [], 16
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos + 4)
        offsets.append((pos, length))
        pos += 12 + length
    # records come in table order, which is creation order
    return path, data, offsets, ids


def _restore(tmp_path, clock):
    m = new_manager(tmp_path, clock)
    m.start()
    return {s.id: s["i"] for s in m.find_sessions()}


def test_corrupt_record_in_the_middle_is_skipped(tmp_path, clock, caplog):
    path, data, offsets, ids = _saved_file(tmp_path, clock)
    start, length = offsets[2]
    data[start + 12 + length - 10] ^= 0xFF        # a flipped byte inside the third record's blob
    path.write_bytes(bytes(data))
    restored = _restore(tmp_path, clock)
    assert restored == {ids[i]: i for i in (0, 1, 3, 4)}
    assert "checksum mismatch" in caplog.text


def test_damaged_length_resynchronises_on_the_next_record(tmp_path, clock, caplog):
    path, data, offsets, ids = _saved_file(tmp_path, clock)
    start, _ = offsets[1]
    struct.pack_into(">I", data, start + 4, 0x7FFFFFF0)
    path.write_bytes(bytes(data))
    assert _restore(tmp_path, clock) == {ids[i]: i for i in (0, 2, 3, 4)}
    assert "runs past the end" in caplog.text


def test_truncated_file_loads_the_complete_records(tmp_path, clock):
    path, data, offsets, ids = _saved_file(tmp_path, clock)
    start, length = offsets[4]
    path.write_bytes(bytes(data[:start + 30]))
    assert _restore(tmp_path, clock) == {ids[i]: i for i in range(4)}


def test_unknown_class_skips_only_that_session(tmp_path, clock, caplog):
    module = types.ModuleType("pycat_vanishing_module")

    class Gone:
        pass
    Gone.__module__ = module.__name__
    Gone.__qualname__ = "Gone"
    module.Gone = Gone
    sys.modules[module.__name__] = module
    try:
        m = new_manager(tmp_path, clock)
        m.start()
        a = m.create_session()
        a["i"] = 0
        b = m.create_session()
        b["i"] = 1
        b["obj"] = Gone()
        c = m.create_session()
        c["i"] = 2
        m.stop()
    finally:
        del sys.modules[module.__name__]
    assert _restore(tmp_path, clock) == {a.id: 0, c.id: 2}
    assert "pycat_vanishing_module" in caplog.text


def test_not_our_file_is_moved_aside_and_start_goes_on(tmp_path, clock, caplog):
    (tmp_path / "SESSIONS.ser").write_bytes(b"\xac\xed\x00\x05 a java serialization stream")
    m = new_manager(tmp_path, clock)
    m.start()
    assert m.active_sessions == 0
    assert (tmp_path / "SESSIONS.ser.corrupt").exists()
    assert "bad magic" in caplog.text
    m.create_session()
    m.stop()


def test_unserialisable_attribute_is_left_out_of_the_save(tmp_path, clock, caplog):
    def gen():
        yield 1
    m = new_manager(tmp_path, clock)
    m.start()
    s = m.create_session()
    s["ok"] = 1
    s["gen"] = gen()
    with caplog.at_level(logging.WARNING):
        m.stop()
    assert "'gen'" in caplog.text
    m2 = new_manager(tmp_path, clock)
    m2.start()
    assert dict(m2.find_session(s.id).items()) == {"ok": 1}


def test_decode_rejects_malformed_records(manager):
    s = manager.create_session("ABC")
    s["k"] = 1
    payload = persistence.encode_session(s)
    for bad in (payload[:5], payload[:-1], payload + b"x", b"", b"\xff\xff"):
        with pytest.raises(persistence.RecordError):
            persistence.decode_session(bad, manager.create_empty_session, manager.load_value)
