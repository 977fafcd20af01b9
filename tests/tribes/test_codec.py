"""The cluster value codec: exact round trips, exact bytes, and nothing but ProtocolError on bad input."""
import collections
import enum
import math
import random

import pytest

from pycat.errors import ProtocolError
from pycat.tribes.io import codec
from pycat.tribes.io.codec import dumps, loads

SAMPLES = [
    None, True, False, 0, 1, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 2 ** 200, -(2 ** 200) + 7,
    0.0, -0.0, 1.5, float("inf"), -1e308, "", "héllo \u20ac \U0001f600", "\ud800", b"", b"\x00\xff" * 10,
    [], (), {}, [1, "a", b"b", None], (1, (2, (3,))), {"a": 1, 2: [3], b"k": {"n": None}},
    {"session": {"id": "ABC.n1", "attrs": {"x": b"dill blob"}, "ts": 1_700_000_000_000}},
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_round_trip_keeps_value_and_type(value):
    back = loads(dumps(value))
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_exact_bytes():
    assert dumps(None) == b"\x01\x00"
    assert dumps(True) == b"\x01\x02" and dumps(False) == b"\x01\x01"
    assert dumps(1) == b"\x01\x03" + (1).to_bytes(8, "big")
    assert dumps(2 ** 63) == b"\x01\x04\x00\x00\x00\x09\x00\x80" + bytes(7)
    assert dumps("é") == b"\x01\x06\x00\x00\x00\x02\xc3\xa9"
    assert dumps(b"ab") == b"\x01\x07\x00\x00\x00\x02ab"
    assert dumps([None]) == b"\x01\x08\x00\x00\x00\x01\x00"
    assert dumps((None,)) == b"\x01\x09\x00\x00\x00\x01\x00"
    assert dumps({"a": None}) == b"\x01\x0a\x00\x00\x00\x01\x06\x00\x00\x00\x01a\x00"
    assert dumps(1.0) == b"\x01\x05\x3f\xf0" + bytes(6)


def test_nan_and_subclasses_and_buffers():
    assert math.isnan(loads(dumps(float("nan"))))

    class Color(enum.IntEnum):
        RED = 3

    assert loads(dumps({Color.RED: Color.RED})) == {3: 3}
    assert type(loads(dumps(collections.OrderedDict(a=1)))) is dict
    assert loads(dumps(bytearray(b"xy"))) == b"xy" and loads(dumps(memoryview(b"xy"))) == b"xy"
    assert loads(bytearray(dumps([1]))) == [1]


def test_unsupported_types_are_type_errors():
    for bad in (object(), {1, 2}, 1j, {(1, 2): 3}, {1.5: 1}, {True: 1}):
        with pytest.raises(TypeError):
            dumps(bad)
    with pytest.raises(TypeError):
        loads("not bytes")


def test_depth_limits():
    deep = []
    node = deep
    for _ in range(codec.DEFAULT_MAX_DEPTH - 1):
        node.append([])
        node = node[0]
    assert loads(dumps(deep)) == deep
    with pytest.raises(ProtocolError):
        loads(dumps(deep), max_depth=10)
    node.append([])
    with pytest.raises(ValueError):
        dumps(deep)
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        dumps(cyclic)
    # hand-made nesting far past the limit: refused, no RecursionError
    with pytest.raises(ProtocolError):
        loads(b"\x01" + b"\x08\x00\x00\x00\x01" * 100000 + b"\x00")


@pytest.mark.parametrize("data", [
    b"", b"\x01", b"\x02\x00",                          # empty, no item, unknown version
    b"\x01\x0b", b"\x01\xff",                          # unknown tags
    b"\x01\x00\x00",                                   # trailing bytes
    b"\x01\x03\x00\x00",                               # truncated int
    b"\x01\x06\x00\x00\x00\x05abc",                    # string runs past
    b"\x01\x06\x00\x00\x00\x02\xff\xfe",               # invalid UTF-8
    b"\x01\x08\xff\xff\xff\xff",                       # absurd count
    b"\x01\x08\x00\x00\x00\x02\x00",                   # list missing an item
    b"\x01\x0a\x00\x00\x00\x01\x08\x00\x00\x00\x00\x00",  # list as a dict key
    b"\x01\x0a\x00\x00\x00\x01\x00\x00",               # None as a dict key
    b"\x01\x0a\x00\x00\x00\x02\x03" + bytes(8) + b"\x00\x03" + bytes(8) + b"\x00",  # repeated key
    b"\x01\x04\x00\x00\x00\x01\x05",                   # big int that fits int64
    b"\x01\x04\x00\x00\x00\x0a\x00\x00\x80" + bytes(7),  # big int with a redundant byte
])
def test_malformed_input_raises_protocol_error(data):
    with pytest.raises(ProtocolError):
        loads(data)


def test_max_size():
    data = dumps(b"x" * 1000)
    assert loads(data, max_size=len(data)) == b"x" * 1000
    with pytest.raises(ProtocolError):
        loads(data, max_size=len(data) - 1)


def _random_value(rng, depth=0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-2 ** 70, 2 ** 70)
    if kind == 2:
        return rng.uniform(-1e9, 1e9)
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(8)))
    if kind in (4, 5, 6):
        return rng.randbytes(rng.randrange(10))
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 8:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(4)))
    return {rng.choice([str(rng.random()), rng.randrange(1000), rng.randbytes(3)]): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def test_fuzz_random_values_round_trip_and_mutations_only_raise_protocol_error():
    rng = random.Random(42)
    for _ in range(1500):
        value = _random_value(rng)
        data = dumps(value)
        assert loads(data) == value
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            if len(mutated) < 2:
                break
            if rng.random() < 0.7:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            else:
                del mutated[rng.randrange(1, len(mutated)):]
        try:
            loads(bytes(mutated))
        except ProtocolError:
            pass
    for _ in range(5000):
        try:
            loads(b"\x01" + rng.randbytes(rng.randint(0, 40)))
        except ProtocolError:
            pass
