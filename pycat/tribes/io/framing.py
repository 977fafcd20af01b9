"""The Tribes TCP frame (Tomcat's ``XByteBuffer``), byte-compatible with Tomcat 7+.

Every message on a Tribes TCP connection (and every ChannelData broadcast on the multicast
socket) travels in one frame::

    +---------+----------------+-------------+---------+
    | FLT2002 | length N (4 B) | N data bytes | TLF2003 |
    +---------+----------------+-------------+---------+
      7 bytes   big-endian int                 7 bytes

The data is a ChannelData package (``channel_data.py``) or one of the two 3-byte acknowledgement
commands the receiver writes back on the same connection: ACK ``{6,2,3}`` and FAIL_ACK
``{11,0,5}`` (21 bytes each once framed).

``FrameDecoder`` is incremental: feed it whatever a socket read returned and it hands back the
complete frame bodies in order, keeping a partial tail for the next read. Unlike Tomcat, which
with ``discard=true`` silently skips garbage until the next start marker, the decoder is strict:
a wrong start marker, a length above ``max_size`` (Java reads the length as a signed int, so a
"negative" length is an absurd one too) or a wrong end marker raises ``ProtocolError``. A stream
that lost its framing cannot be trusted to resynchronise, so the connection owner closes it and
logs. The decoder resets itself first, so it never holds more than one frame's worth of bytes
(at most ``max_size`` + 18).
"""
import struct

from pycat.errors import ProtocolError

START_DATA = b"FLT2002"
END_DATA = b"TLF2003"
ACK_DATA = bytes([6, 2, 3])
FAIL_ACK_DATA = bytes([11, 0, 5])

#: largest frame body the decoders accept (Tomcat has no limit; we bound memory per connection)
DEFAULT_MAX_SIZE = 16 * 1024 * 1024

HEADER_SIZE = len(START_DATA) + 4
TRAILER_SIZE = len(END_DATA)
#: bytes a frame adds around its data
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
_MAX_JAVA_INT = 0x7FFFFFFF

_LEN = struct.Struct(">I")


def encode_frame(data):
    """Frame one body (bytes-like) for the wire."""
    n = len(data)
    if n > _MAX_JAVA_INT:
        raise ValueError("frame body of %d bytes exceeds a Java int" % n)
    return b"".join((START_DATA, _LEN.pack(n), data, END_DATA))


def read_block(data, pos, end, what, subject):
    """Read one length-prefixed block (a 4-byte big-endian length, then that many bytes, the
    shape of every variable field of a member record and a ChannelData package) at ``pos``,
    not past ``end``. Returns (bytes, position after it); ``subject`` and ``what`` name the
    package and the field in the ProtocolError."""
    if pos + 4 > end:
        raise ProtocolError("%s truncated before its %s" % (subject, what))
    (n,) = _LEN.unpack_from(data, pos)
    pos += 4
    if n > end - pos:
        raise ProtocolError("%s %s length %d runs past its end" % (subject, what, n))
    return bytes(data[pos:pos + n]), pos + n


ACK_FRAME = encode_frame(ACK_DATA)
FAIL_ACK_FRAME = encode_frame(FAIL_ACK_DATA)


class FrameDecoder:
    """Incremental decoder: ``feed(bytes) -> [body, ...]``; strict about markers and sizes.

    When ``feed`` raises ProtocolError, the bodies completed earlier in that same call are on the
    exception as ``err.frames`` (the connection owner may still deliver them), and the decoder is
    empty again.
    """

    __slots__ = ("max_size", "_buf")

    def __init__(self, max_size=DEFAULT_MAX_SIZE):
        self.max_size = max_size
        self._buf = bytearray()

    @property
    def buffered(self):
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    @property
    def frame_size(self):
        """Whole size (header, body, trailer) of the frame held in part, as its header announced
        it; 0 when nothing is held, the bytes held while the header itself is incomplete. After
        ``feed`` the held bytes are always the start of one frame, so this is what finishing it
        will cost: the receiver charges it against its total buffer budget."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return len(buf)
        return HEADER_SIZE + _LEN.unpack_from(buf, len(START_DATA))[0] + TRAILER_SIZE

    def reset(self):
        self._buf = bytearray()

    def feed(self, data):
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data  # nothing held: parse the caller's buffer in place, keep only its tail
        frames = []
        pos = 0
        size = len(buf)
        view = memoryview(buf)
        try:
            while True:
                avail = size - pos
                if avail < HEADER_SIZE:
                    # check the start marker as soon as its first bytes arrive: garbage fails fast
                    head = min(avail, len(START_DATA))
                    if head and view[pos:pos + head] != START_DATA[:head]:
                        raise ProtocolError("frame does not begin with FLT2002: %r"
                                            % bytes(view[pos:pos + head]))
                    break
                if view[pos:pos + 7] != START_DATA:
                    raise ProtocolError("frame does not begin with FLT2002: %r" % bytes(view[pos:pos + 7]))
                (length,) = _LEN.unpack_from(buf, pos + 7)
                if length > self.max_size:
                    raise ProtocolError("frame length %d exceeds the maximum %d" % (length, self.max_size))
                end = pos + HEADER_SIZE + length
                if size < end + TRAILER_SIZE:
                    break
                if view[end:end + TRAILER_SIZE] != END_DATA:
                    raise ProtocolError("frame of %d bytes does not end with TLF2003: %r"
                                        % (length, bytes(view[end:end + TRAILER_SIZE])))
                frames.append(view[pos + HEADER_SIZE:end].tobytes())
                pos = end + TRAILER_SIZE
            tail = view[pos:] if buf is not self._buf else None
        except ProtocolError as exc:
            view.release()
            self._buf = bytearray()
            exc.frames = frames
            raise
        if tail is not None:
            self._buf = bytearray(tail)
            tail.release()
            view.release()
        else:
            view.release()
            if pos:
                del buf[:pos]
        return frames


def decode_frames(data, max_size=DEFAULT_MAX_SIZE):
    """All frame bodies in a complete buffer (e.g. one multicast datagram); leftovers are an error."""
    decoder = FrameDecoder(max_size)
    frames = decoder.feed(data)
    if decoder.buffered:
        raise ProtocolError("truncated frame: %d bytes left over" % decoder.buffered)
    return frames
