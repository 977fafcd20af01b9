"""The ClusterMessage envelope, byte by byte (pure: no sockets)."""
import struct

import pytest

from pycat.ha.cluster_message import ClusterMessage
from pycat.tribes.io import codec


def _str(text):
    raw = text.encode()
    return b"\x06" + struct.pack(">I", len(raw)) + raw


def _int(value):
    return b"\x03" + struct.pack(">q", value)


def test_envelope_bytes():
    msg = ClusterMessage("session", b"\x01\x02", "id-7", timestamp=1700000000123)
    expected = (b"\x01"                                   # codec version
                + b"\x0a" + struct.pack(">I", 5)          # dict of 5 entries, in this order
                + _str("__pycat_cluster__") + _int(1)
                + _str("kind") + _str("session")
                + _str("unique_id") + _str("id-7")
                + _str("timestamp") + _int(1700000000123)
                + _str("body") + b"\x07" + struct.pack(">I", 2) + b"\x01\x02")
    assert codec.dumps(msg.to_wire()) == expected
    back = ClusterMessage.from_wire(codec.loads(expected))
    assert (back.kind, back.body, back.unique_id, back.timestamp, back.address) == (
        "session", b"\x01\x02", "id-7", 1700000000123, None)


def test_only_envelopes_are_cluster_messages():
    assert ClusterMessage.is_envelope(ClusterMessage("x").to_wire())
    for other in ({"__pycat_rpc__": 1}, [1], b"bytes", "text", None):
        assert not ClusterMessage.is_envelope(other)


@pytest.mark.parametrize("change", [
    {"__pycat_cluster__": 2},          # another version
    {"kind": 5},                       # wrong type
    {"timestamp": "now"},
    {"extra": 1},                      # unknown key
])
def test_malformed_envelopes_are_rejected(change):
    wire = ClusterMessage("k", None).to_wire()
    wire.update(change)
    with pytest.raises(ValueError):
        ClusterMessage.from_wire(wire)


def test_missing_field_is_rejected():
    wire = ClusterMessage("k", None).to_wire()
    del wire["body"]
    with pytest.raises(ValueError):
        ClusterMessage.from_wire(wire)
