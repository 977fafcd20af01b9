"""ChannelData packages: layout byte by byte, round trips through frames, malformations."""
import random
import struct
import time

import pytest

from pycat.errors import ProtocolError
from pycat.tribes.io.channel_data import (ChannelData, get_options_from_package, is_ack, is_fail_ack,
                                          new_unique_id, send_ack_async, send_ack_sync)
from pycat.tribes.io.framing import ACK_DATA, FAIL_ACK_DATA, FrameDecoder, encode_frame
from pycat.tribes.member import Member

SENDER = Member("127.0.0.1", 4000, unique_id=bytes(range(16)), alive_time=42)


def test_layout_byte_by_byte():
    uid = bytes(range(100, 116))
    data = ChannelData(6, 1_700_000_000_123, uid, SENDER, b"msg")
    record = SENDER.encode(False)
    assert data.encode() == (struct.pack(">iq", 6, 1_700_000_000_123) + b"\x00\x00\x00\x10" + uid
                             + struct.pack(">i", len(record)) + record + b"\x00\x00\x00\x03msg")
    assert data.encode_frame() == encode_frame(data.encode())
    assert get_options_from_package(data.encode()) == 6


def test_create_and_round_trip():
    before = int(time.time() * 1000)
    data = ChannelData.create(8, SENDER, b"payload")
    assert before <= data.timestamp <= int(time.time() * 1000)
    assert len(data.unique_id) == 16 and data.unique_id[6] >> 4 == 4 and data.unique_id[8] >> 6 == 2
    back = ChannelData.decode(data.encode())
    assert (back.options, back.timestamp, back.unique_id, back.message) == (8, data.timestamp, data.unique_id, b"payload")
    assert back.address == SENDER and back.address.alive_time == 42
    assert back == data and hash(back) == hash(data)
    assert new_unique_id() != new_unique_id()


def test_high_option_bits_and_replaceable_message():
    data = ChannelData.create(0x100 | 0x40 | 0x01, SENDER, bytearray(b"abc"))
    data.message = data.message + b"\x00"  # an interceptor appending a trailer
    back = ChannelData.decode(data.encode())
    assert back.options == 0x141 and back.message == b"abc\x00"
    clone = back.clone()
    assert clone == back and clone is not back
    clone.message = b"other"
    assert back.message == b"abc\x00"


def test_ack_helpers():
    assert is_ack(ACK_DATA) and not is_ack(FAIL_ACK_DATA) and is_fail_ack(FAIL_ACK_DATA)
    assert not is_ack(b"") and not is_fail_ack(ChannelData.create(0, SENDER, b"").encode())
    assert send_ack_async(2) and not send_ack_async(6) and not send_ack_async(0) and not send_ack_async(4)
    assert send_ack_sync(6) and send_ack_sync(14) and not send_ack_sync(2) and not send_ack_sync(4)


def test_many_packages_through_random_chunks():
    rng = random.Random(3)
    sent = [ChannelData.create(rng.choice([0, 2, 6, 8]), SENDER, rng.randbytes(rng.randint(0, 70000)))
            for _ in range(60)]
    stream = b"".join(d.encode_frame() for d in sent)
    decoder, got, pos = FrameDecoder(), [], 0
    while pos < len(stream):
        step = rng.randint(1, 9000)
        got += [ChannelData.decode(body) for body in decoder.feed(stream[pos:pos + step])]
        pos += step
    assert [(g.unique_id, g.options, g.message) for g in got] == [(s.unique_id, s.options, s.message) for s in sent]


def _good():
    return ChannelData(2, 5, bytes(16), SENDER, b"hello").encode()


@pytest.mark.parametrize("mutate", [
    lambda p: p[:-1],
    lambda p: p + b"\x00",
    lambda p: p[:12] + b"\x00\x00\x00\x0f" + p[16:],            # uid length 15
    lambda p: p[:12] + b"\xff\xff\xff\xff" + p[16:],            # absurd uid length
    lambda p: p[:32] + b"\x7f\xff\xff\xff" + p[36:],            # absurd member length
    lambda p: p[:36] + b"TRIBES-X" + p[44:],                    # broken member record
    lambda p: p[:-9] + b"\x00\x00\x00\x06" + p[-5:],            # message length runs past
    lambda p: p[:10],
    lambda p: b"",
])
def test_malformed_packages_raise_protocol_error(mutate):
    with pytest.raises(ProtocolError):
        ChannelData.decode(mutate(_good()))
    with pytest.raises(ProtocolError):
        get_options_from_package(b"\x00\x00")


def test_fuzz_only_protocol_errors():
    rng = random.Random(5)
    good = _good()
    for _ in range(5000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            if len(data) < 2:
                break
            if rng.random() < 0.7:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                del data[rng.randrange(1, len(data)):]
        try:
            back = ChannelData.decode(bytes(data))
        except ProtocolError:
            continue
        assert back.encode() == bytes(data)
    for _ in range(2000):
        with pytest.raises(ProtocolError):
            ChannelData.decode(rng.randbytes(rng.randint(0, 150)))
