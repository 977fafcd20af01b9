"""The farm's pure parts, without sockets: the wire format (farm_message), transfers put back
together (file_message_factory), versions and the catch-up plan (farm_state), the watcher."""
import hashlib
import os

import pytest

from pycat.errors import ProtocolError
from pycat.ha.deploy import farm_message as fm
from pycat.ha.deploy.farm_state import FarmState, Record, catch_up_plan
from pycat.ha.deploy.farm_war_deployer import check_war_context
from pycat.ha.deploy.file_message_factory import TransferError, Transfers, file_digest, read_chunks
from pycat.ha.deploy.war_watcher import WarWatcher

SHA = hashlib.sha256(b"hello world").digest()


def chunk(offset, data, transfer="t1", war="app.war", size=11, sha=SHA, stamp=5, origin="n1"):
    return fm.Chunk(transfer, war, size, sha, stamp, origin, offset, data)


# -- wire format ----------------------------------------------------------------------------------
@pytest.mark.parametrize("message", [
    chunk(0, b"hello"),
    fm.Abort("t1", "no"),
    fm.Undeploy("app##2.war", 7),
    fm.InventoryRequest("r1"),
    fm.Inventory("r1", [fm.Entry("ROOT.war", 3, SHA, 9, "tcp://x", False, True)]),
    fm.Fetch("r1", "a#b.war", SHA),
])
def test_every_message_round_trips_through_the_codec(message):
    from pycat.tribes.io import codec
    assert fm.decode(codec.loads(codec.dumps(fm.encode(message))), check_war_context) == message


@pytest.mark.parametrize("name", ["../x.war", "a/b.war", "a\\b.war", ".hidden.war", "x.zip", "\x00.war",
                                  "/abs.war", "a..b.war", 5, "x" * 300 + ".war", "#..war"])
def test_hostile_war_names_are_refused(name):
    with pytest.raises(ProtocolError):
        fm.decode(fm.encode(fm.Undeploy("ok.war", 1))[:2] + [name, 1], check_war_context)


def test_the_context_name_rule_applies_through_the_check():
    # "a#.war" passes the plain file-name check but names /a's folder: war.parse_context_name refuses it
    body = [1, "undeploy", "a#.war", 1]
    assert fm.decode(body).war == "a#.war"
    with pytest.raises(ProtocolError, match="invalid context name"):
        fm.decode(body, check_war_context)


@pytest.mark.parametrize("body", [
    None, [], [2, "undeploy", "a.war", 1], [1, "nope"], [1, "undeploy", "a.war"],
    [1, "chunk", "t", "a.war", 4, SHA, 1, "o", 2, b"abc"],          # runs past the size
    [1, "chunk", "t", "a.war", 4, b"short", 1, "o", 0, b"abc"],      # not a sha256
    [1, "chunk", "t", "a.war", -1, SHA, 1, "o", 0, b""],
    [1, "chunk", "", "a.war", 4, SHA, 1, "o", 0, b"abc"],
    [1, "chunk", "t", "a.war", 4, SHA, 1, "o", 0, "text"],
    [1, "inventory", "r", [["a.war", 1, SHA, 1, "o", "yes", False]]],
])
def test_malformed_messages_raise_protocol_error(body):
    with pytest.raises(ProtocolError):
        fm.decode(body)


# -- transfers ------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_transfer_in_order_completes_and_verifies(tmp_path):
    table = Transfers(str(tmp_path), clock=Clock())
    assert table.chunk("n1", chunk(0, b"hello ")) is None
    assert table.chunk("n1", chunk(0, b"hello ")) is None          # a duplicate is ignored
    done = table.chunk("n1", chunk(6, b"world"))
    assert done is not None and len(table) == 0
    assert open(done.path, "rb").read() == b"hello world"
    assert os.path.dirname(done.path) == str(tmp_path)


@pytest.mark.parametrize("second, why", [
    (chunk(6, b"w0rld"), "checksum mismatch"),
    (chunk(6, b"world", stamp=6), "does not match its first chunk"),
    (chunk(6, b"world", size=12), "does not match its first chunk"),
    (chunk(7, b"orld"), "a chunk was lost"),
])
def test_a_bad_chunk_drops_the_transfer_and_its_file(tmp_path, second, why):
    table = Transfers(str(tmp_path), clock=Clock())
    table.chunk("n1", chunk(0, b"hello "))
    assert len(os.listdir(tmp_path)) == 1
    with pytest.raises(TransferError, match=why):
        table.chunk("n1", second)
    assert len(table) == 0 and os.listdir(tmp_path) == []


def test_bounds_size_count_start_and_silence(tmp_path):
    clock = Clock()
    table = Transfers(str(tmp_path), max_transfers=2, max_size=10, max_valid_time=5, clock=clock)
    with pytest.raises(TransferError, match="maxWarSize"):
        table.chunk("n1", chunk(0, b"hello "))
    with pytest.raises(TransferError, match="not 0"):
        table.chunk("n1", chunk(3, b"lo ", size=8))
    table.chunk("n1", chunk(0, b"abc", transfer="a", size=8))
    table.chunk("n2", chunk(0, b"abc", transfer="a", size=8))
    with pytest.raises(TransferError, match="maxConcurrentTransfers"):
        table.chunk("n3", chunk(0, b"abc", transfer="a", size=8))
    clock.now += 4
    table.chunk("n1", chunk(3, b"de", transfer="a", size=8))      # n1 is alive, n2 went silent
    clock.now += 2
    dropped = table.expire()
    assert [r.key for r in dropped] == [("n2", "a")]
    assert len(table) == 1 and len(os.listdir(tmp_path)) == 1
    table.clear()
    assert os.listdir(tmp_path) == []


def test_sweep_removes_only_part_files(tmp_path):
    (tmp_path / "old.war.1.1.farm-part").write_bytes(b"x")
    (tmp_path / "keep.txt").write_bytes(b"x")
    assert Transfers(str(tmp_path)).sweep() == 1
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_chunks_are_read_one_at_a_time(tmp_path):
    path = tmp_path / "f.war"
    path.write_bytes(os.urandom(2500))
    with open(path, "rb") as fh:
        parts = list(read_chunks(fh, 2500, 1024))
    assert [(o, len(d)) for o, d in parts] == [(0, 1024), (1024, 1024), (2048, 452)]
    assert file_digest(str(path)) == (hashlib.sha256(path.read_bytes()).digest(), 2500)
    with open(path, "rb") as fh, pytest.raises(TransferError, match="ended"):
        list(read_chunks(fh, 3000, 1024))


# -- versions and catch-up ---------------------------------------------------------------------
def test_stamps_only_go_up_and_survive_a_restart(tmp_path):
    times = iter([1.0, 1.0, 0.5])
    state = FarmState(str(tmp_path / "farm.json"), clock=lambda: next(times))
    a, b, c = state.next_stamp(), state.next_stamp(), state.next_stamp()
    assert a < b < c
    state.put("app.war", Record(3, SHA, c, "n1", False))
    again = FarmState(str(tmp_path / "farm.json")).load()
    assert again.get("app.war") == Record(3, SHA, c, "n1", False) and again.last_stamp == c


def test_catch_up_fetches_newer_and_removes_tombstoned(tmp_path):
    state = FarmState()
    state.put("old.war", Record(1, SHA, 5, "n1", False))
    state.put("same.war", Record(1, SHA, 5, "n1", False))
    state.put("gone.war", Record(1, SHA, 5, "n1", False))
    other = hashlib.sha256(b"v2").digest()
    e = fm.Entry
    inventories = {
        "m1": [e("old.war", 2, other, 9, "n1", False, True), e("same.war", 1, SHA, 5, "n1", False, True),
               e("new.war", 4, other, 3, "n2", False, True), e("gone.war", 0, b"\0" * 32, 8, "n1", True, False)],
        "m2": [e("old.war", 1, SHA, 5, "n1", False, True), e("new.war", 4, other, 3, "n2", False, False)],
    }
    fetch, remove = catch_up_plan(state, inventories)
    assert [(w, x.stamp, h) for w, x, h in fetch] == [("new.war", 3, ["m1", "m2"]), ("old.war", 9, ["m1"])]
    assert [(w, x.stamp) for w, x in remove] == [("gone.war", 8)]


# -- the watcher ------------------------------------------------------------------------------------
def test_the_watcher_reports_stable_wars_once_and_removals(tmp_path):
    watcher = WarWatcher(str(tmp_path))
    (tmp_path / "a.war").write_bytes(b"1")
    (tmp_path / "notes.txt").write_bytes(b"1")
    assert watcher.check() == ([], [])                       # seen once: maybe still being copied
    assert watcher.check() == ([str(tmp_path / "a.war")], [])
    assert watcher.check() == ([], [])                       # reported once
    os.utime(tmp_path / "a.war", ns=(1, 1))
    assert watcher.check() == ([], [])
    assert watcher.check() == ([str(tmp_path / "a.war")], [])
    os.unlink(tmp_path / "a.war")
    assert watcher.check() == ([], ["a.war"])
