import re

import pytest

from pycat.session.id_generator import (SessionIdGenerator, is_valid_session_id, parse_session_id,
                                        strip_route)


def test_default_id_is_32_uppercase_hex_chars():
    sid = SessionIdGenerator().generate_session_id()
    assert re.fullmatch(r"[0-9A-F]{32}", sid)


def test_length_is_configurable_in_bytes():
    g = SessionIdGenerator()
    g.session_id_length = "8"  # as the digester sets it
    assert re.fullmatch(r"[0-9A-F]{16}", g.generate_session_id())
    assert len(g.generate_session_id(length=20)) == 40


def test_route_suffix():
    g = SessionIdGenerator()
    assert re.fullmatch(r"[0-9A-F]{32}\.node1", g.generate_session_id(route="node1"))
    g.jvm_route = "n2"
    assert g.generate_session_id().endswith(".n2")


def test_ids_are_unique_over_10k():
    g = SessionIdGenerator()
    assert len({g.generate_session_id() for _ in range(10_000)}) == 10_000


def test_bad_length_is_refused():
    g = SessionIdGenerator()
    g.session_id_length = 0
    with pytest.raises(ValueError):
        g.generate_session_id()


@pytest.mark.parametrize("value, expected", [
    ("ABCDEF0123", ("ABCDEF0123", None)),
    ("abc123.node-1", ("abc123.node-1", "node-1")),
    ("abc.worker_2", ("abc.worker_2", "worker_2")),
])
def test_parse_good_ids(value, expected):
    assert parse_session_id(value) == expected


@pytest.mark.parametrize("value", [
    None, "", 42, b"ABC", "A" * 400, "ABC.", ".node", "AB CD", "ABC\n", "ABC;x", "../etc/passwd",
    "ABC.node.extra", "ABC%00", "ÄBC", "ABC\x00", "AB\"C", "<script>",
])
def test_parse_rejects_malformed_ids(value):
    assert parse_session_id(value) is None
    assert not is_valid_session_id(value)


def test_strip_route():
    assert strip_route("ABC.node1") == "ABC"
    assert strip_route("ABC") == "ABC"
