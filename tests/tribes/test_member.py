"""Member records: layout byte by byte, round trips, identity, caching, every malformation."""
import random
import struct

import pytest

from pycat.errors import ProtocolError
from pycat.tribes import member as member_mod
from pycat.tribes.member import SHUTDOWN_PAYLOAD, Member, host_to_bytes

UID = bytes(range(16))


def test_layout_byte_by_byte():
    m = Member("127.0.0.1", 4000, -1, 45543, UID, domain=b"dom", payload=b"pay", command=b"", alive_time=1234)
    expected = (b"TRIBES-B\x01\x00" + struct.pack(">I", 53 + 3 + 3)
                + struct.pack(">q", 1234) + struct.pack(">iii", 4000, -1, 45543)
                + b"\x04\x7f\x00\x00\x01"
                + b"\x00\x00\x00\x00"
                + b"\x00\x00\x00\x03dom"
                + UID
                + b"\x00\x00\x00\x03pay"
                + b"TRIBES-E\x01\x00")
    assert m.encode(refresh_alive=False) == expected
    assert len(Member("127.0.0.1", 4000, unique_id=UID).encode(False)) == 77  # as in the pcap


def test_round_trip_ipv6_and_all_fields():
    m = Member("::1", 4001, 4443, 4002, UID, domain=bytes(range(1, 10)), payload=b"p" * 333,
               command=b"cmd", alive_time=2 ** 40)
    d = Member.decode(m.encode(False))
    assert len(d.host) == 16 and d.hostname == "::1"
    for field in ("host", "port", "secure_port", "udp_port", "unique_id", "domain", "payload", "command",
                  "alive_time"):
        assert getattr(d, field) == getattr(m, field), field
    assert d.encode(False) == m.encode(False)


def test_identity_ignores_payload_domain_alive_time():
    m1 = Member("{127,0,0,1}", 3333, unique_id=UID, payload=b"x" * 333, domain=b"a", alive_time=5)
    m2 = Member("127.0.0.1", 3333, unique_id=UID, payload=b"", domain=b"b", alive_time=9)
    p2 = Member("127.0.0.1", 3331, unique_id=UID)
    assert m1 == m2 and hash(m1) == hash(m2)
    assert m1 != p2
    assert m1 != Member("127.0.0.1", 3333)  # another unique id
    assert len({m1, m2, p2}) == 2


def test_names():
    m = Member("10.0.0.1", 4000)
    assert m.hostname == "10.0.0.1" and m.name == "tcp://10.0.0.1:4000"
    assert not m.is_shutdown
    m.command = SHUTDOWN_PAYLOAD
    assert m.is_shutdown and SHUTDOWN_PAYLOAD == b"BABY-ALEX"
    assert "tcp://10.0.0.1:4000" in repr(m)


def test_local_member_refreshes_alive_time(monkeypatch):
    clock = [1_000_000]
    monkeypatch.setattr(member_mod, "now_ms", lambda: clock[0])
    m = Member.local("127.0.0.1", 4000, payload=b"x")
    assert m.is_local and len(m.unique_id) == 16 and m.unique_id[6] >> 4 == 4
    first = m.encode()
    clock[0] += 50
    second = m.encode()
    assert first != second and Member.decode(second).alive_time == 50
    assert Member.decode(first) == Member.decode(second)
    # not refreshing returns the cached record, identical to the last one sent
    clock[0] += 50
    assert m.encode(refresh_alive=False) is second
    assert Member.local("127.0.0.1", 4000).unique_id != m.unique_id


def test_cache_invalidated_by_any_wire_field():
    m = Member("127.0.0.1", 4000, unique_id=UID)
    before = m.encode(False)
    m.payload = b"new"
    assert Member.decode(m.encode(False)).payload == b"new"
    m.domain = "dom\xe9"  # strings are ISO-8859-1
    assert Member.decode(m.encode(False)).domain == b"dom\xe9"
    m.payload, m.domain = b"", b""
    assert m.encode(False) == before
    m.host = "10.0.0.2"
    assert Member.decode(m.encode(False)).hostname == "10.0.0.2"


def test_decoded_member_keeps_its_bytes():
    record = Member("127.0.0.1", 4000, unique_id=UID, alive_time=77).encode(False)
    decoded = Member.decode(bytearray(record))
    assert decoded.encode() == record  # a remote member is never "refreshed"
    assert not decoded.is_local


def test_bad_values_rejected_at_construction():
    with pytest.raises(ValueError):
        Member("127.0.0.1", 4000, unique_id=b"short")
    with pytest.raises(ValueError):
        Member(b"\x01\x02\x03", 4000)
    with pytest.raises(ValueError):
        host_to_bytes("no-such-host.invalid")
    assert host_to_bytes("[::1]") == bytes(15) + b"\x01"


def test_member_is_pure_names_are_resolved_by_the_membership_service():
    """Member never asks DNS (tests/test_layers.py checks its imports); the services resolve names."""
    from pycat.tribes.membership.base import resolve_host
    from pycat.tribes.membership.static import StaticMember
    with pytest.raises(ValueError, match="resolved by the membership service"):
        Member("localhost", 4000)
    assert resolve_host("localhost") in (bytes([127, 0, 0, 1]), bytes(15) + b"\x01")
    assert resolve_host("{10,0,0,1}") == resolve_host("10.0.0.1") == bytes([10, 0, 0, 1])
    with pytest.raises(ValueError, match="cannot resolve"):
        resolve_host("no-such-host.invalid")
    assert StaticMember("localhost", 4000).host == resolve_host("localhost")


def _good():
    return Member("127.0.0.1", 4000, unique_id=UID, domain=b"d", payload=b"pp", command=b"c").encode(False)


@pytest.mark.parametrize("mutate", [
    lambda r: r[:-1],                                   # truncated end marker
    lambda r: r + b"\x00",                              # trailing byte
    lambda r: b"TRIBES-B\x02\x00" + r[10:],             # another format version
    lambda r: b"TRIBES-B" + r[10:],                     # Tomcat 6 marker (no version)
    lambda r: r[:-10] + b"TRIBES-X\x01\x00",            # wrong end marker
    lambda r: r[:10] + b"\x7f\xff\xff\xff" + r[14:],    # absurd body length
    lambda r: r[:34] + b"\x80" + r[35:],                # host length > 127
    lambda r: r[:34] + b"\x05" + r[35:],                # host length 5
    lambda r: r[:39] + b"\x00\x00\x01\x00" + r[43:],    # command length runs past
    lambda r: b"",
    lambda r: b"TRIBES-B\x01\x00",
])
def test_malformed_records_raise_protocol_error(mutate):
    with pytest.raises(ProtocolError):
        Member.decode(mutate(_good()))


def test_fuzz_only_protocol_errors():
    rng = random.Random(99)
    good = _good()
    decoded = 0
    for _ in range(5000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.6 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.8 and data:
                del data[rng.randrange(len(data)):]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        try:
            m = Member.decode(bytes(data))
        except ProtocolError:
            continue
        decoded += 1
        assert m.encode(False) == bytes(data)  # anything accepted re-encodes exactly
    assert decoded > 0
    for _ in range(2000):
        with pytest.raises(ProtocolError):
            Member.decode(rng.randbytes(rng.randint(0, 120)))
