"""The ChannelData package: one channel message as it travels inside a frame (Tomcat's ``ChannelData``).

Byte-compatible with Tomcat 7+; all integers big-endian::

    size   field
    4      options               send-option bits (Channel.SEND_OPTIONS_*; bits >= 0x80 for interceptors)
    8      timestamp             sender's wall clock, ms since the epoch
    4+16   unique id             length (always 16, anything else is rejected) + random v4 UUID bytes
    4+m    sender                length + the sender's member record (member.py), not refreshed
    4+n    message               length + the message bytes

The message bytes are opaque at this level: raw bytes for BYTE_MESSAGE, otherwise whatever the
layer above encoded (pycat: ``codec.py``; Tomcat: Java serialization, which pycat never decodes).
Interceptors replace ``message`` freely (compression, encryption, fragment trailers).

A frame whose data is exactly ``{6,2,3}`` or ``{11,0,5}`` is an ACK / FAIL_ACK, not a ChannelData;
``is_ack`` / ``is_fail_ack`` tell them apart before decoding.
"""
import itertools
import os
import struct
import time

from pycat.errors import ProtocolError
from pycat.tribes.io.framing import ACK_DATA, FAIL_ACK_DATA, END_DATA, START_DATA, read_block
from pycat.tribes.member import Member, random_unique_id as new_unique_id  # noqa: F401 (the old name, kept)

# the two send-option bits the receiving side needs (same values as the channel's constants)
_USE_ACK = 0x02
_SYNCHRONIZED_ACK = 0x04

_HEAD = struct.Struct(">Iq")  # options, timestamp
_UINT = struct.Struct(">I")
# a frame's start: marker, frame length, then the package's options, timestamp, unique id length
_FRAME_HEAD = struct.Struct(">7sIIqI")
_FIXED = _HEAD.size + 12      # the package's bytes besides the unique id, member and message


def _message_ids():
    """A source of message unique ids: random v4 UUIDs cost a getrandom() call each, and
    ChannelData.create makes one per message; these are a random 8-byte half (made per process,
    with the version-4 bits) and a counter from a random start (with the RFC 4122 variant bits):
    unique within the process, and across processes as random ids are. Nothing uses a message id
    as a secret (AuthInterceptor signs it, EncryptInterceptor has its own IVs)."""
    head = bytearray(os.urandom(8))
    head[6] = (head[6] & 0x0F) | 0x40
    start = int.from_bytes(os.urandom(8), "big") & ((1 << 61) - 1)
    counter = itertools.count(0x8000000000000000 | start)     # "10" top bits: 2**61 ids before they change
    head = bytes(head)
    return lambda: head + next(counter).to_bytes(8, "big")


def _new_ids():
    global next_message_id
    next_message_id = _message_ids()


next_message_id = None
_new_ids()
os.register_at_fork(after_in_child=_new_ids)      # a child must not repeat its parent's ids


def is_ack(frame_body):
    return frame_body == ACK_DATA


def is_fail_ack(frame_body):
    return frame_body == FAIL_ACK_DATA


def send_ack_async(options):
    """USE_ACK without SYNCHRONIZED_ACK: the receiver acks as soon as it has read the message."""
    return options & (_USE_ACK | _SYNCHRONIZED_ACK) == _USE_ACK


def send_ack_sync(options):
    """USE_ACK with SYNCHRONIZED_ACK: the receiver acks after processing (FAIL_ACK if that raised)."""
    return options & (_USE_ACK | _SYNCHRONIZED_ACK) == _USE_ACK | _SYNCHRONIZED_ACK


def get_options_from_package(data):
    """The options of an encoded ChannelData without decoding the rest."""
    if len(data) < 4:
        raise ProtocolError("channel data too short for its options (%d bytes)" % len(data))
    return _UINT.unpack_from(data, 0)[0]


class ChannelData:
    """One message on the channel: options, timestamp, unique id, sender, message bytes."""

    __slots__ = ("options", "timestamp", "unique_id", "address", "message")

    def __init__(self, options=0, timestamp=0, unique_id=b"", address=None, message=b""):
        self.options = options
        self.timestamp = timestamp
        self.unique_id = unique_id
        self.address = address
        self.message = message

    @classmethod
    def create(cls, options, address, message):
        """A new message from ``address`` (usually the local member): fresh id, current time."""
        return cls(options, int(time.time() * 1000), next_message_id(), address, message)

    def __eq__(self, other):
        # Tomcat: ChannelData equality is the unique id
        if not isinstance(other, ChannelData):
            return NotImplemented
        return self.unique_id == other.unique_id

    def __hash__(self):
        return hash(self.unique_id)

    def __repr__(self):
        return "ChannelData(options=%d, id=%s, from=%s, %d bytes)" % (
            self.options, self.unique_id.hex(), self.address.name if self.address else None, len(self.message))

    def clone(self):
        """A copy whose message bytes can be replaced without touching this one."""
        return ChannelData(self.options, self.timestamp, self.unique_id, self.address, bytes(self.message))

    def _parts(self):
        member = self.address.encode(refresh_alive=False)
        uid, message = self.unique_id, self.message
        return (_HEAD.pack(self.options & 0xFFFFFFFF, self.timestamp),
                _UINT.pack(len(uid)), uid,
                _UINT.pack(len(member)), member,
                _UINT.pack(len(message)), message)

    def encode(self):
        """The package bytes (the frame body)."""
        return b"".join(self._parts())

    def encode_frame(self):
        """The framed package in one copy (equal to ``framing.encode_frame(self.encode())``)."""
        member = self.address.encode(refresh_alive=False)
        uid, message = self.unique_id, self.message
        size = _FIXED + len(uid) + len(member) + len(message)
        return b"".join((_FRAME_HEAD.pack(START_DATA, size, self.options & 0xFFFFFFFF, self.timestamp, len(uid)), uid,
                         _UINT.pack(len(member)), member, _UINT.pack(len(message)), message, END_DATA))

    @classmethod
    def decode(cls, data):
        """Parse one package (a frame body); ProtocolError if it is malformed."""
        size = len(data)
        if size < _HEAD.size + 12:
            raise ProtocolError("channel data too short (%d bytes)" % size)
        options, timestamp = _HEAD.unpack_from(data, 0)
        uid, pos = read_block(data, _HEAD.size, size, "unique id", "channel data")
        if len(uid) != 16:
            raise ProtocolError("channel data unique id has %d bytes, not 16" % len(uid))
        member, pos = read_block(data, pos, size, "member", "channel data")
        message, pos = read_block(data, pos, size, "message", "channel data")
        if pos != size:
            raise ProtocolError("channel data has %d unexpected trailing bytes" % (size - pos))
        return cls(options, timestamp, uid, Member.decode(member), message)
