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
                + b"\x08" + struct.pack(">I", 6)          # a list of 6 items, by position
                + _str("__pycat_cluster__") + _int(2)     # marker, envelope version
                + _str("session")                         # kind
                + _str("id-7")                            # unique id
                + _int(1700000000123)                     # timestamp
                + b"\x07" + struct.pack(">I", 2) + b"\x01\x02")     # body
    assert codec.dumps(msg.to_wire()) == expected
    back = ClusterMessage.from_wire(codec.loads(expected))
    assert (back.kind, back.body, back.unique_id, back.timestamp, back.address) == (
        "session", b"\x01\x02", "id-7", 1700000000123, None)


def test_only_envelopes_are_cluster_messages():
    assert ClusterMessage.is_envelope(ClusterMessage("x").to_wire())
    for other in ({"__pycat_rpc__": 1}, [1], [], ["__pycat_rpc__", 1], b"bytes", "text", None,
                  ("__pycat_cluster__", 2, "k", "", 1, None)):
        assert not ClusterMessage.is_envelope(other)


# [marker, version, kind, unique_id, timestamp, body]
@pytest.mark.parametrize("index,value", [
    (1, 1), (1, 3), (1, "2"), (1, True), (1, None),       # another version, or not an int
    (2, 5), (2, None), (2, b"k"),                         # kind
    (3, 7), (3, None),                                    # unique id
    (4, "now"), (4, -1), (4, 1.5), (4, None),             # timestamp
])
def test_malformed_envelopes_are_rejected(index, value):
    wire = ClusterMessage("k", None).to_wire()
    ClusterMessage.from_wire(list(wire))                  # the unmutated one is fine
    wire[index] = value
    with pytest.raises(ValueError):
        ClusterMessage.from_wire(wire)


def test_missing_or_extra_field_and_the_version_1_dict_are_rejected():
    wire = ClusterMessage("k", None).to_wire()
    for broken in (wire[:5], wire + [1], wire[:1], {"__pycat_cluster__": 1, "kind": "k", "unique_id": "",
                                                    "timestamp": 1, "body": None}):
        assert ClusterMessage.is_envelope(broken)
        with pytest.raises(ValueError):
            ClusterMessage.from_wire(broken)
    for other in ([], ["x"], "x", None):
        with pytest.raises(ValueError):
            ClusterMessage.from_wire(other)
