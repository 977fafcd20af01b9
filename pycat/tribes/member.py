"""A cluster member and its wire record (Tomcat's ``MemberImpl.getData`` / ``getMember``).

The same record is the multicast heartbeat datagram and the sender field of every ChannelData.
All integers big-endian (Java ints/longs)::

    offset size  field
    0      10    TRIBES-B 0x01 0x00          begin marker + format version 1.0
    10     4     L = total length - 24       (everything between this field and the end marker)
    14     8     alive time, ms              (how long the member's service has been running)
    22     4     TCP port
    26     4     secure port                 (-1: none)
    30     4     UDP port                    (-1: none)
    34     1     h, host length              (4 for IPv4, 16 for IPv6)
    35     h     host address bytes
    ..     4+c   command length + command    (b"BABY-ALEX": the member is shutting down)
    ..     4+d   domain length + domain
    ..     16    unique id
    ..     4+p   payload length + payload
    14+L   10    TRIBES-E 0x01 0x00          end marker

Tomcat 6 records (8-byte markers, no UDP port) are not compatible and are rejected.

Decoding is strict: markers in place, every length inside the record, the fields exactly
filling L, nothing after the end marker; anything else is ``ProtocolError`` (never IndexError or
struct.error). A decoded member keeps its record bytes, so re-encoding it without refreshing the
alive time reproduces the received bytes exactly; like Tomcat, the encoded record is cached and
only the alive-time field is patched on each heartbeat.

Two members are equal when host bytes, port and unique id are equal (payload, domain, command
and alive time do not count), as in Tomcat.
"""
import ipaddress
import os
import struct
import time

from pycat.errors import ProtocolError
from pycat.tribes.io.framing import read_block

MEMBER_BEGIN = b"TRIBES-B\x01\x00"
MEMBER_END = b"TRIBES-E\x01\x00"
#: command of a member's last heartbeat before a graceful stop
SHUTDOWN_PAYLOAD = b"BABY-ALEX"

_HEAD = struct.Struct(">qiiiB")  # alive, port, secure port, udp port, host length
_UINT = struct.Struct(">I")
_ALIVE = struct.Struct(">q")
_ALIVE_OFFSET = len(MEMBER_BEGIN) + 4
#: bytes of a record besides its variable-length fields
_FIXED = len(MEMBER_BEGIN) + 4 + _HEAD.size + 4 + 4 + 16 + 4 + len(MEMBER_END)

# assigning one of these changes the record, so the cached bytes are dropped
_WIRE_FIELDS = frozenset(("host", "port", "secure_port", "udp_port", "unique_id", "domain",
                          "payload", "command", "alive_time"))


def now_ms():
    """The clock member alive times are measured with (monotonic, ms)."""
    return int(time.monotonic() * 1000)


def host_to_bytes(host):
    """4 or 16 address bytes from bytes, an IP string or ``{b,b,b,b}``. Pure: a host *name* is a
    ValueError here; the membership services resolve names (pycat.tribes.membership.base.resolve_host)
    before they reach a Member."""
    if isinstance(host, (bytes, bytearray, memoryview)):
        host = bytes(host)
        if len(host) not in (4, 16):
            raise ValueError("a host address has 4 or 16 bytes, not %d" % len(host))
        return host
    if not isinstance(host, str) or not host.strip():
        raise ValueError("not a host: %r" % (host,))
    host = host.strip()
    if host.startswith("{"):
        return host_to_bytes(parse_byte_list(host))
    try:
        return ipaddress.ip_address(host.strip("[]")).packed
    except ValueError:
        raise ValueError("%r is not an IP address or {b,b,b,b} (host names are resolved by the "
                         "membership service, not by Member)" % host) from None


def parse_byte_list(text):
    """Tomcat's ``{1,2,3}`` byte list as bytes; a value may be 0..255 or a Java byte -128..127."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not a byte list {b,b,...}: %r" % text)
    out = bytearray()
    for part in text[1:-1].split(","):
        part = part.strip()
        if not part:
            continue
        value = int(part, 10)
        if not -128 <= value <= 255:
            raise ValueError("byte value %d out of range (-128..255) in %r" % (value, text))
        out.append(value & 0xFF)
    return bytes(out)


def config_bytes(value):
    """A byte field (domain, payload, command): bytes, None, ``{1,2,3}`` or ISO-8859-1 text."""
    if value is None:
        return b""
    if isinstance(value, str):
        if value.strip().startswith("{"):
            return parse_byte_list(value)
        return value.encode("iso-8859-1")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ValueError("expected bytes or text, not %s" % type(value).__name__)


def random_unique_id():
    """16 random bytes with the RFC 4122 version-4 bits set, like Tomcat's UUIDGenerator
    (cheaper than building a uuid.UUID: ChannelData.create calls it for every message)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


class Member:
    """A cluster member: where to reach it (host, ports) and who it is (unique_id)."""

    def __init__(self, host=None, port=0, secure_port=-1, udp_port=-1, unique_id=None,
                 domain=b"", payload=b"", command=b"", alive_time=0, service_start_time=None):
        self._data = None
        self.host = host
        self.port = port
        self.secure_port = secure_port
        self.udp_port = udp_port
        self.unique_id = unique_id if unique_id is not None else random_unique_id()
        self.domain = domain
        self.payload = payload
        self.command = command
        self.alive_time = alive_time
        #: monotonic ms when the local service started; None for members heard from the network
        self.service_start_time = service_start_time
        #: True for the member describing this node
        self.is_local = service_start_time is not None

    @classmethod
    def local(cls, host, port, secure_port=-1, udp_port=-1, domain=b"", payload=b"",
              unique_id=None, command=b""):
        """The member describing this node: a fresh random unique id, alive time counted from now."""
        return cls(host, port, secure_port, udp_port, unique_id or random_unique_id(),
                   domain, payload, command, 0, now_ms())

    def __setattr__(self, name, value):
        if name in _WIRE_FIELDS:
            if name == "host":
                value = None if value is None else host_to_bytes(value)
            elif name == "unique_id":
                value = parse_byte_list(value) if isinstance(value, str) else bytes(value)
                if len(value) != 16:
                    raise ValueError("a member unique id has exactly 16 bytes, not %d" % len(value))
            elif name in ("domain", "payload", "command"):
                value = config_bytes(value)
            else:
                value = int(value)
            object.__setattr__(self, "_data", None)
        object.__setattr__(self, name, value)

    # -- identity --------------------------------------------------------------------------
    def __eq__(self, other):
        if not isinstance(other, Member):
            return NotImplemented
        return self.host == other.host and self.port == other.port and self.unique_id == other.unique_id

    def __hash__(self):
        return hash((self.host, self.port, self.unique_id))

    @property
    def hostname(self):
        return str(ipaddress.ip_address(self.host)) if self.host else ""

    @property
    def name(self):
        return "tcp://%s:%d" % (self.hostname, self.port)

    @property
    def is_shutdown(self):
        return self.command == SHUTDOWN_PAYLOAD

    def __repr__(self):
        extra = ""
        if self.domain:
            extra += ", domain=%r" % (self.domain,)
        if self.command:
            extra += ", command=%r" % (self.command,)
        return "Member(%s, id=%s, alive=%d%s)" % (self.name, self.unique_id.hex(), self.alive_time, extra)

    def copy(self):
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other

    # -- wire record -----------------------------------------------------------------------
    def encode(self, refresh_alive=True):
        """The member record. With refresh_alive, a local member's alive time is brought up to date."""
        if refresh_alive and self.service_start_time is not None:
            alive = now_ms() - self.service_start_time
            data = self._data
            object.__setattr__(self, "alive_time", alive)
            if data is not None:
                data = b"".join((data[:_ALIVE_OFFSET], _ALIVE.pack(alive), data[_ALIVE_OFFSET + 8:]))
                object.__setattr__(self, "_data", data)
                return data
        data = self._data
        if data is None:
            data = self._build()
            object.__setattr__(self, "_data", data)
        return data

    def _build(self):
        if self.host is None:
            raise ValueError("member has no host")
        host, command, domain, payload = self.host, self.command, self.domain, self.payload
        body = _HEAD.size + len(host) + 4 + len(command) + 4 + len(domain) + 16 + 4 + len(payload)
        return b"".join((
            MEMBER_BEGIN, _UINT.pack(body),
            _HEAD.pack(self.alive_time, self.port, self.secure_port, self.udp_port, len(host)), host,
            _UINT.pack(len(command)), command,
            _UINT.pack(len(domain)), domain,
            self.unique_id,
            _UINT.pack(len(payload)), payload,
            MEMBER_END,
        ))

    @classmethod
    def decode(cls, data):
        """Parse one complete member record (bytes-like); ProtocolError if it is malformed."""
        data = bytes(data)
        size = len(data)
        if size < _FIXED + 4:
            raise ProtocolError("member record too short (%d bytes)" % size)
        if data[:10] != MEMBER_BEGIN:
            raise ProtocolError("member record does not begin with TRIBES-B 1.0: %r" % data[:10])
        (body,) = _UINT.unpack_from(data, 10)
        end = 14 + body
        if end + 10 != size:
            raise ProtocolError("member record length field %d does not match its %d bytes" % (body, size))
        if data[end:] != MEMBER_END:
            raise ProtocolError("member record does not end with TRIBES-E 1.0")
        alive, port, secure_port, udp_port, host_len = _HEAD.unpack_from(data, 14)
        if host_len not in (4, 16):
            raise ProtocolError("member host length %d is neither 4 nor 16" % host_len)
        pos = 14 + _HEAD.size
        host = data[pos:pos + host_len]
        pos += host_len
        command, pos = read_block(data, pos, end, "command", "member record")
        domain, pos = read_block(data, pos, end, "domain", "member record")
        if pos + 16 > end:
            raise ProtocolError("member record truncated in its unique id")
        unique_id = data[pos:pos + 16]
        payload, pos = read_block(data, pos + 16, end, "payload", "member record")
        if pos != end:
            raise ProtocolError("member record has %d unexpected bytes before its end marker" % (end - pos))
        member = cls.__new__(cls)
        d = member.__dict__
        d.update(host=host, port=port, secure_port=secure_port, udp_port=udp_port, unique_id=unique_id,
                 domain=domain, payload=payload, command=command, alive_time=alive,
                 service_start_time=None, is_local=False, _data=data)
        return member
