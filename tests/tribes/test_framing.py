"""FLT2002 / length / data / TLF2003 frames: layout, incremental decoding, every malformation."""
import random

import pytest

from pycat.errors import ProtocolError
from pycat.tribes.io.framing import (ACK_DATA, ACK_FRAME, DEFAULT_MAX_SIZE, END_DATA, FAIL_ACK_DATA,
                                     FAIL_ACK_FRAME, FrameDecoder, START_DATA, decode_frames,
                                     encode_frame)


def test_layout_and_acks():
    assert encode_frame(b"abc") == b"FLT2002\x00\x00\x00\x03abcTLF2003"
    assert encode_frame(b"") == b"FLT2002\x00\x00\x00\x00TLF2003"
    assert ACK_FRAME == b"FLT2002\x00\x00\x00\x03\x06\x02\x03TLF2003" and len(ACK_FRAME) == 21
    assert FAIL_ACK_FRAME == b"FLT2002\x00\x00\x00\x03\x0b\x00\x05TLF2003" and len(FAIL_ACK_FRAME) == 21
    assert (START_DATA, END_DATA, ACK_DATA, FAIL_ACK_DATA) == (b"FLT2002", b"TLF2003", b"\x06\x02\x03", b"\x0b\x00\x05")
    assert DEFAULT_MAX_SIZE == 16 * 1024 * 1024
    assert encode_frame(bytearray(b"x")) == encode_frame(memoryview(b"x")) == encode_frame(b"x")


def test_random_chunking_delivers_every_frame_in_order():
    rng = random.Random(7)
    bodies = [rng.randbytes(rng.choice([0, 1, 3, 20, 300, 5000, 70000])) for _ in range(200)]
    bodies[5] = ACK_DATA
    stream = b"".join(map(encode_frame, bodies))
    for trial in range(5):
        decoder = FrameDecoder()
        out, pos = [], 0
        while pos < len(stream):
            step = rng.choice([1, 2, 7, 11, 18, 100, 4096, 100000])
            out += decoder.feed(stream[pos:pos + step])
            pos += step
        assert out == bodies
        assert decoder.buffered == 0


def test_byte_at_a_time_and_many_in_one_read():
    bodies = [b"one", b"", b"three" * 10]
    stream = b"".join(map(encode_frame, bodies))
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i:i + 1])
    assert out == bodies
    assert FrameDecoder().feed(stream) == bodies
    assert decode_frames(stream) == bodies


def test_partial_tail_is_kept():
    decoder = FrameDecoder()
    frame = encode_frame(b"hello")
    assert decoder.feed(frame + frame[:9]) == [b"hello"]
    assert decoder.buffered == 9
    assert decoder.feed(frame[9:]) == [b"hello"]
    assert decoder.buffered == 0


@pytest.mark.parametrize("garbage", [
    b"X",                                      # wrong first byte: fails at once
    b"FLT2003\x00\x00\x00\x01aTLF2003",        # wrong start marker
    b"GET / HTTP/1.1\r\n\r\n",                 # someone talking HTTP to the receiver port
    b"FLT2002\x00\x00\x00\x01aTLF2004",        # wrong end marker
    b"FLT2002\x00\x00\x00\x01abLF2003",        # length shorter than the data
    b"FLT2002\xff\xff\xff\xff",                # negative (Java) / absurd length
    b"FLT2002\x01\x00\x00\x01",                # just above the default maximum
])
def test_malformations_raise_and_reset(garbage):
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(garbage)
    assert decoder.buffered == 0
    # the decoder is usable again (the connection owner normally closes anyway)
    assert decoder.feed(encode_frame(b"ok")) == [b"ok"]


def test_garbage_after_good_frames_keeps_them_on_the_error():
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(encode_frame(b"a") + encode_frame(b"b") + b"junk!!!!!!!!")
    assert info.value.frames == [b"a", b"b"]
    assert decoder.buffered == 0


def test_max_size_bounds_memory():
    decoder = FrameDecoder(max_size=1000)
    assert decoder.feed(encode_frame(b"x" * 1000)) == [b"x" * 1000]
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame(b"x" * 1001)[:11])  # refused from the header alone
    # a huge declared length is refused before any body byte is buffered
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"FLT2002\x7f\xff\xff\xff")


def test_decode_frames_rejects_truncation():
    with pytest.raises(ProtocolError):
        decode_frames(encode_frame(b"abc")[:-1])


def test_fuzz_random_bytes_only_ever_raise_protocol_error():
    rng = random.Random(1234)
    good = encode_frame(b"payload")
    for _ in range(3000):
        decoder = FrameDecoder(max_size=4096)
        choice = rng.random()
        if choice < 0.4:
            data = rng.randbytes(rng.randint(1, 64))
        elif choice < 0.8:  # mutate a good stream
            data = bytearray(good * 3)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:  # prefixed with a marker and a random length
            data = START_DATA + rng.randbytes(rng.randint(0, 40))
        try:
            for frame in decoder.feed(data):
                assert isinstance(frame, bytes)
        except ProtocolError:
            assert decoder.buffered == 0
        assert decoder.buffered <= 4096 + 18


def test_frame_size_is_what_the_held_frame_will_cost():
    decoder = FrameDecoder()
    frame = encode_frame(b"x" * 1000)
    assert decoder.frame_size == 0
    decoder.feed(frame[:5])
    assert decoder.frame_size == 5                  # header incomplete: only what is held
    decoder.feed(frame[5:100])
    assert decoder.frame_size == len(frame) == 1018  # header read: the whole frame as announced
    assert decoder.feed(frame[100:] + frame[:20]) == [b"x" * 1000]
    assert decoder.frame_size == 1018 and decoder.buffered == 20  # the next frame, not the finished one
    assert decoder.feed(frame[20:]) == [b"x" * 1000]
    assert decoder.frame_size == 0
